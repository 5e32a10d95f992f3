//! The TOML configuration. Every table denies unknown keys, and every value is checked when the
//! file is read, so a typo fails at start-up with a message naming the key.
//!
//! - A TOML or type error gives line, column and key, never the line or the value: a config
//!   line may hold a secret (`api_secret = "..."` is an unknown key, and is not echoed).
//! - Plaintext (`ws://`, `tcp://`, `http://`) to a host that is not loopback (127.0.0.0/8,
//!   `::1`, `localhost`) is refused for `venue.ws_url`, `venue.rest_url` and, with orders on,
//!   `orders.url`, unless that table says `allow_plaintext = true` (then `run` warns).
//! - Values that contradict each other are refused naming both keys: `net.reconnect_initial_ms`
//!   above `net.reconnect_max_ms`, `net.heartbeat_ms` not below `net.idle_timeout_ms`. So are
//!   `venue.snapshot_limit` outside 1..=5000, `risk.burst = 0`, `risk.max_open_orders` outside
//!   1..=10000 (or with `max_open_orders` x `venue.symbols` past 1,000,000), and
//!   `orders.conn_id` 0 or 1 (the REST side's and the market feed's ids).
//!
//! ```toml
//! [engine]
//! # io_cpu = 0          # CPU of the feed (I/O) thread; -1 = do not pin. Unset: the first
//! #                     #   CPU the process is allowed (affinity mask and cgroup cpuset)
//! # core_cpu = 1        # CPU of the core thread; -1 = do not pin. Unset: the second allowed
//! #                     #   CPU (with only one allowed, both run unpinned, with a warning)
//! # housekeeping_cpus = [0] # every other thread (metrics, REST, control, recorder, the
//! #                     #   simulator in demo). Unset: the I/O CPU; never the core's
//! # mlockall = true     # lock memory (where permitted; else one warning). Unset: on for
//! #                     #   run and the live demo, off for replay
//! idle = "spin"         # spin | spin-yield | backoff
//! ring_capacity = 65536 # events per SPSC ring
//!
//! [paper]               # paper venue used by replay and demo
//! latency_us = 1000
//! maker_fee = "0.001"
//! taker_fee = "0.001"
//!
//! [strategy]
//! name = "naive"        # naive | sma_cross | probe | none
//! # wasm = "sma_cross.wasm"  # instead of `name`: a WebAssembly strategy (params go to its tl_init)
//! [strategy.params]
//! chunks = 2
//! profit_interval = "0.0005"
//!
//! [replay]
//! symbol = "BTCUSDT"    # symbol of a line capture's REST snapshot (which carries none)
//! pace = "asap"         # asap | recorded | xN
//!
//! [venue]               # `run`, `record`: where the market data comes from
//! ws_url = "wss://stream.binance.com:9443"
//! rest_url = "https://api.binance.com"
//! symbols = ["BTCUSDT"]
//! streams = ["trade", "bookTicker", "depth@100ms"]  # REST snapshots only with a depth stream
//! snapshot_limit = 1000                # 1..=5000
//! # allow_plaintext = true             # ws:// tcp:// http:// to a non-loopback host (warned)
//!
//! [[feeds]]             # more venues, one connection each (see crate::venues); [venue] stays
//! venue = "okx"         #   Binance spot (`symbols = []` there: no Binance spot feed)
//! symbols = ["BTC-USDT"]
//! streams = ["trade", "book_ticker", "depth"]  # trade | agg_trade | book_ticker | depth
//! # ws_url, rest_url: default the venue adapter's; trade, conn_id, allow_plaintext as above
//!
//! [net]
//! heartbeat_ms = 5000                  # below idle_timeout_ms
//! idle_timeout_ms = 10000
//! reconnect_initial_ms = 100           # at most reconnect_max_ms
//! reconnect_max_ms = 10000
//!
//! [orders]              # live orders (`run`): off by default, strategies trade on paper
//! enabled = true
//! url = "wss://ws-api.binance.com:443/ws-api/v3"
//! # allow_plaintext = true           # a ws:// url to a non-loopback host (warned at start)
//! credentials_env = "TICKLINE"       # TICKLINE_API_KEY + TICKLINE_API_SECRET (or _ED25519_KEY_FILE)
//! # credentials_file = "/etc/tickline/binance.key"   # instead: a 0600 key file
//! journal = "orders.tlj"             # write-ahead journal; recovered at every start
//! fsync = "never"                    # never | always | every:N | interval:MS
//! journal_compact_mb = 64            # compact a larger journal at start-up (history kept)
//! on_shutdown = "cancel"             # SIGTERM / Ctrl-C: cancel open orders first | "keep" them
//! shutdown_timeout_ms = 10000        # the whole graceful stop, bounded (1000..=600000)
//! # shard = 0                        # this engine's shard of `shards` on one account: client
//! # shards = 1                       #   ids of different shards never meet
//!
//! [control]             # the runtime control socket of `tickline run` (`tickline ctl`)
//! enabled = true
//! socket = "tickline.sock"           # Unix socket, mode 0600 (the default for `tickline run`)
//! # tcp = "127.0.0.1:7070"           # instead: a loopback TCP port (other addresses are refused);
//! # token_file = "control.token"     #   it needs a token: this file (mode 0600, nothing looser)
//!                                    #   or else $TICKLINE_CONTROL_TOKEN (16 bytes at least)
//! reply_timeout_ms = 5000            # how long a command waits for the core's answer
//!
//! [health]              # liveness and readiness over HTTP (`run`); off without `listen`
//! listen = "0.0.0.0:8080"            # GET /livez (/healthz) and /readyz, JSON bodies
//! live_max_ms = 1000                 # live while the core's last poll is this recent (100..=60000)
//!
//! [risk]                # pre-trade limits, every symbol (on whenever orders are)
//! max_order_qty = "1"
//! max_order_notional = "100000"
//! max_position = "5"
//! max_open_orders = 32  # per symbol, 1..=10000: the core's order table is this x symbols
//! rate_per_sec = 10
//! burst = 20
//! price_band_bps = 2000
//! ```

use anyhow::{bail, Context, Result};
use engine::idle::IdleMode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Threads, pinning, rings.
    pub engine: EngineSection,
    /// Paper venue.
    pub paper: PaperSection,
    /// Strategy and its parameters.
    pub strategy: StrategySection,
    /// Replay defaults.
    pub replay: ReplaySection,
    /// The live venue (`run`, `record`).
    pub venue: VenueSection,
    /// Connection limits, heartbeat and reconnect policy (`run`, `record`).
    pub net: NetSection,
    /// Metrics shipping and latency reports.
    pub metrics: MetricsSection,
    /// Live orders through the venue's order API (`run`).
    pub orders: OrdersSection,
    /// Pre-trade risk limits.
    pub risk: RiskSection,
    /// The runtime control socket (`run`; `tickline ctl` talks to it).
    pub control: ControlSection,
    /// Liveness and readiness over HTTP (`run`; off by default).
    pub health: HealthSection,
    /// `[[feeds]]`: more venues' feeds besides `[venue]` ([`crate::venues`]).
    pub feeds: Vec<crate::venues::FeedSection>,
}

/// `[health]`: `tickline run` answers liveness and readiness probes over HTTP/1.1 on `listen`
/// (see [`crate::health`]); without `listen`, nothing is served.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// `ADDRESS:PORT` to serve on, e.g. `0.0.0.0:8080` (port 0: any free port).
    pub listen: Option<String>,
    /// Live while the core loop's last poll is at most this old, ms (100..=60000).
    pub live_max_ms: u64,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            listen: None,
            live_max_ms: 1000,
        }
    }
}

impl HealthSection {
    /// The address to serve on, if any (checked by [`Config::validate`]).
    pub fn addr(&self) -> Result<Option<SocketAddr>> {
        let Some(l) = &self.listen else {
            return Ok(None);
        };
        let a = l
            .to_socket_addrs()
            .with_context(|| format!("health.listen = {l:?}: expected ADDRESS:PORT"))?
            .next()
            .with_context(|| format!("health.listen = {l:?}: resolves to no address"))?;
        Ok(Some(a))
    }
}

/// The socket name `tickline run` serves control on when the config names none.
pub const DEFAULT_CONTROL_SOCKET: &str = "tickline.sock";

/// `[control]`: where a running engine takes runtime commands (`tickline ctl`).
///
/// `tickline run` serves a Unix socket (`socket`, default [`DEFAULT_CONTROL_SOCKET`] in its
/// working directory) unless `enabled = false`; `tcp` serves a loopback TCP port instead. A
/// library caller of `live::run_live` gets a control socket only when the
/// config names `socket` or `tcp`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Serve runtime control.
    pub enabled: bool,
    /// Unix socket path (created with mode 0600, removed at exit).
    pub socket: Option<String>,
    /// Instead of the Unix socket: a loopback TCP address, `127.0.0.1:PORT` or `[::1]:PORT`.
    /// It needs a token (`token_file`, or the environment variable
    /// [`TOKEN_ENV`]); without one the engine refuses to start.
    pub tcp: Option<String>,
    /// The TCP control token's file (mode 0600 or stricter; a looser one is refused). Without
    /// it, the token comes from [`TOKEN_ENV`]. The Unix socket needs
    /// none. `tickline ctl --config` reads it too.
    pub token_file: Option<String>,
    /// How long a command waits for the core's answer, ms.
    pub reply_timeout_ms: u64,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            enabled: true,
            socket: None,
            tcp: None,
            token_file: None,
            reply_timeout_ms: 5000,
        }
    }
}

impl ControlSection {
    /// Where `tickline run` serves control and where `tickline ctl --config` looks: `tcp` if
    /// set, else `socket`, else [`DEFAULT_CONTROL_SOCKET`]. `None` when disabled.
    pub fn endpoint(&self) -> Result<Option<Endpoint>> {
        if !self.enabled {
            return Ok(None);
        }
        if self.tcp.is_some() {
            return self.configured_endpoint();
        }
        let path = self.socket.as_deref().unwrap_or(DEFAULT_CONTROL_SOCKET);
        Ok(Some(Endpoint::Unix(path.into())))
    }

    /// The TCP control token: from `token_file` if set (mode 0600, else refused), else from the
    /// environment variable [`TOKEN_ENV`]; `None` if neither.
    pub fn token(&self) -> Result<Option<Token>> {
        match &self.token_file {
            Some(path) => Token::from_file(Path::new(path)).map(Some),
            None => Token::from_env(),
        }
    }

    /// Only what the config names (`tcp` or `socket`), without the default: what a library
    /// caller of `run_live` serves. `None` when disabled or when neither is set.
    pub fn configured_endpoint(&self) -> Result<Option<Endpoint>> {
        if !self.enabled {
            return Ok(None);
        }
        match (&self.tcp, &self.socket) {
            (Some(_), Some(_)) => {
                bail!("control: set either socket or tcp, not both")
            }
            (Some(addr), None) => Ok(Some(Endpoint::Tcp(
                loopback_addr(addr).context("control.tcp")?,
            ))),
            (None, Some(path)) => {
                if path.is_empty() {
                    bail!("control.socket: an empty path");
                }
                Ok(Some(Endpoint::Unix(path.into())))
            }
            (None, None) => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The control endpoint and its token (served by `control`, named by `[control]`)
// ---------------------------------------------------------------------------------------------

/// The environment variable that holds the TCP control token when `[control] token_file` is
/// not set (read by `tickline run` and by `tickline ctl`).
pub const TOKEN_ENV: &str = "TICKLINE_CONTROL_TOKEN";

/// Shortest accepted token, bytes (for example `openssl rand -hex 32` makes 64).
pub const MIN_TOKEN_LEN: usize = 16;

/// Longest accepted token file, bytes.
const MAX_TOKEN_FILE: u64 = 4096;

/// Where the control socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// Parses `HOST:PORT` and insists on a loopback address (`127.0.0.1`, `[::1]`, or a name that
/// resolves to loopback only, such as `localhost`).
pub fn loopback_addr(s: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = match s.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        Err(_) => {
            if s.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                bail!("{s:?}: expected HOST:PORT, such as 127.0.0.1:7070");
            }
            s.to_socket_addrs()
                .with_context(|| format!("{s:?}: cannot resolve"))?
                .collect()
        }
    };
    match addrs.first() {
        Some(a) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*a),
        Some(_) => bail!(
            "{s:?}: not a loopback address; TCP control is served on 127.0.0.1 or [::1] only (its token would cross the network in clear)"
        ),
        None => bail!("{s:?}: resolves to no address"),
    }
}

/// The shared secret of TCP control. Its text is never printed: `Debug` shows `Token(..)`, it
/// has no `Display`, and no error message quotes it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from `text` (trimmed); `origin` names where it came from in errors.
    pub fn new(text: &str, origin: &str) -> Result<Token> {
        let t = text.trim();
        if t.is_empty() {
            bail!("{origin}: the control token is empty");
        }
        if t.len() < MIN_TOKEN_LEN {
            bail!(
                "{origin}: the control token is {} bytes; at least {MIN_TOKEN_LEN} (for example `openssl rand -hex 32`)",
                t.len()
            );
        }
        if t.chars().any(char::is_control) {
            bail!(
                "{origin}: the control token holds a control character (one line of text, please)"
            );
        }
        Ok(Token(t.to_string()))
    }

    /// Reads a token file, which must be a regular file of mode 0600 or stricter (no group or
    /// other bits): a looser one is refused, naming its mode.
    pub fn from_file(path: &Path) -> Result<Token> {
        let shown = format!("control.token_file {}", path.display());
        let file = std::fs::File::open(path).with_context(|| shown.clone())?;
        let meta = file.metadata().with_context(|| shown.clone())?;
        if !meta.is_file() {
            bail!("{shown}: not a regular file");
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            bail!(
                "{shown}: mode {mode:04o} lets other users read it; `chmod 600` it (the token guards the kill switch)"
            );
        }
        let mut bytes = Vec::new();
        file.take(MAX_TOKEN_FILE + 1)
            .read_to_end(&mut bytes)
            .with_context(|| shown.clone())?;
        if bytes.len() as u64 > MAX_TOKEN_FILE {
            bail!("{shown}: longer than {MAX_TOKEN_FILE} bytes; a token file holds one token");
        }
        let text =
            String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown}: not UTF-8 text"))?;
        Token::new(&text, &shown)
    }

    /// The token in the environment variable [`TOKEN_ENV`], if set.
    pub fn from_env() -> Result<Option<Token>> {
        match std::env::var(TOKEN_ENV) {
            Ok(v) => Token::new(&v, TOKEN_ENV).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV}: not UTF-8 text"),
        }
    }

    /// The token's text, for the one place that must send it (a `tickline ctl` request line).
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, in time that depends on the token's length only (not
    /// on where the first differing byte is).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }
}

/// `secret == candidate`, looking at every byte of `secret` whatever differs: the time depends
/// on `secret.len()` only (the candidate's length is its sender's own knowledge).
pub fn constant_time_eq(secret: &[u8], candidate: &[u8]) -> bool {
    let mut diff = secret.len() ^ candidate.len();
    for (i, &s) in secret.iter().enumerate() {
        let c = candidate.get(i).copied().unwrap_or(!s);
        diff |= usize::from(std::hint::black_box(s ^ c));
    }
    std::hint::black_box(diff) == 0
}

/// `[orders]`: the venue's order API, credentials and the order journal.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersSection {
    /// Send the strategies' orders to the venue (else they trade on the paper venue).
    pub enabled: bool,
    /// The order API's WebSocket URL.
    pub url: String,
    /// Read the API key and secret from `<PREFIX>_API_KEY` and `<PREFIX>_API_SECRET` (or
    /// `<PREFIX>_ED25519_KEY_FILE`).
    pub credentials_env: String,
    /// Instead of the environment: a key file readable by its owner only (mode 0600).
    pub credentials_file: Option<String>,
    /// The write-ahead order journal (created if missing; recovered at every start).
    pub journal: String,
    /// When the journal is synced: `never` (the kernel writes back; survives a killed process,
    /// not a power cut), `always`, `every:N` records, `interval:MS`.
    pub fsync: String,
    /// `recvWindow` of signed requests, ms (0: the venue's default).
    pub recv_window_ms: u32,
    /// After a market frame, the I/O thread busy-polls this long for the strategy's order, µs.
    pub spin_after_frame_us: u64,
    /// An order without an answer this long is reported `TimedOut` (and stays in flight), ms.
    pub ack_timeout_ms: u64,
    /// Connection id of the order API link in notices.
    pub conn_id: u32,
    /// Log the order connection on with `session.logon` (Ed25519 keys only): requests then go
    /// unsigned, which takes signing off the order path.
    pub session_logon: bool,
    /// Refuse orders that may rest (GTC) with `NoUserStream` while the venue has not confirmed
    /// the user data stream (or refused it): their fills and end would never be learned. IOC,
    /// FOK and market orders always go (their `order.place` reply settles them).
    pub require_user_stream: bool,
    /// At start-up, a journal larger than this (MiB) is compacted to the state it holds; the old
    /// file is kept beside it as `<journal>.<unix seconds>`. 0: never.
    pub journal_compact_mb: u64,
    /// Accept a `ws://` `url` to a host that is not loopback (the API key and signed orders
    /// then cross the network in clear; a warning is printed at start).
    pub allow_plaintext: bool,
    /// On SIGTERM or Ctrl-C (`tickline run`): `cancel` (the default) halts trading and cancels
    /// every open order, waiting for the venue's answers, before stopping; `keep` stops at once
    /// and leaves resting orders at the venue (the journal has them; the next start reconciles).
    /// A second signal stops at once either way.
    pub on_shutdown: String,
    /// The graceful stop after SIGTERM or Ctrl-C, cancels included, ends within this (ms; then
    /// the process exits non-zero). Keep it under Kubernetes' `terminationGracePeriodSeconds`.
    pub shutdown_timeout_ms: u64,
    /// This engine's shard, `0..shards`, when `shards` engines trade one account (each its own
    /// symbols and journal): each start numbers its client order ids in an epoch of its own
    /// residue, so two shards never send the same id, even starting in the same second.
    pub shard: u64,
    /// How many shards trade the account (1: this engine alone).
    pub shards: u64,
}

impl OrdersSection {
    /// `on_shutdown = "cancel"`.
    pub fn cancel_on_shutdown(&self) -> bool {
        self.on_shutdown == "cancel"
    }
}

impl Default for OrdersSection {
    fn default() -> Self {
        OrdersSection {
            enabled: false,
            url: "wss://ws-api.binance.com:443/ws-api/v3".into(),
            credentials_env: "TICKLINE".into(),
            credentials_file: None,
            journal: "orders.tlj".into(),
            fsync: "never".into(),
            recv_window_ms: 5000,
            spin_after_frame_us: 50,
            ack_timeout_ms: 5000,
            conn_id: 100,
            journal_compact_mb: 64,
            session_logon: false,
            allow_plaintext: false,
            require_user_stream: true,
            on_shutdown: "cancel".into(),
            shutdown_timeout_ms: 10_000,
            shard: 0,
            shards: 1,
        }
    }
}

/// `[risk]`: pre-trade limits for every symbol (quantities and notionals as decimal strings).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskSection {
    /// Check orders at all. Live orders (`orders.enabled`) always are.
    pub enabled: bool,
    /// Largest quantity of one order.
    pub max_order_qty: String,
    /// Largest price x quantity of one order.
    pub max_order_notional: String,
    /// Largest |position|, counting every open order as filled.
    pub max_position: String,
    /// Most open orders per symbol.
    pub max_open_orders: u32,
    /// Orders per second, sustained.
    pub rate_per_sec: u32,
    /// Orders at once after a quiet period.
    pub burst: u32,
    /// Limit prices within this many basis points of the last trade.
    pub price_band_bps: u32,
}

impl Default for RiskSection {
    fn default() -> Self {
        let d = engine::risk::RiskLimits::default();
        RiskSection {
            enabled: false,
            max_order_qty: d.max_order_qty.to_string(),
            max_order_notional: (d.max_order_notional.0 / engine::fixed::SCALE as i128).to_string(),
            max_position: d.max_position.to_string(),
            max_open_orders: d.max_open_orders,
            rate_per_sec: d.rate_per_sec,
            burst: d.burst,
            price_band_bps: d.price_band_bps,
        }
    }
}

impl RiskSection {
    /// The limits, checked.
    pub fn limits(&self) -> Result<engine::risk::RiskLimits> {
        let fixed = |key: &str, v: &str| -> Result<i64> {
            let x = engine::fixed::parse_fixed(v.as_bytes())
                .map_err(|e| anyhow::anyhow!("risk.{key} = {v:?}: {e}"))?;
            if x <= 0 {
                bail!("risk.{key} = {v:?}: must be positive");
            }
            Ok(x)
        };
        if self.rate_per_sec == 0 {
            bail!("risk.rate_per_sec: must be positive");
        }
        Ok(engine::risk::RiskLimits {
            max_order_qty: engine::fixed::Qty(fixed("max_order_qty", &self.max_order_qty)?),
            max_order_notional: engine::fixed::Notional(fixed(
                "max_order_notional",
                &self.max_order_notional,
            )? as i128),
            max_position: engine::fixed::Qty(fixed("max_position", &self.max_position)?),
            max_open_orders: self.max_open_orders,
            rate_per_sec: self.rate_per_sec,
            burst: self.burst,
            price_band_bps: self.price_band_bps,
        })
    }
}

/// Parses `orders.fsync`.
pub fn fsync_policy(s: &str) -> Result<feeds::orders::journal::FsyncPolicy> {
    use feeds::orders::journal::FsyncPolicy;
    let bad = || {
        anyhow::anyhow!(
            "orders.fsync = {s:?}: expected never, always, every:N (N >= 1) or interval:MS (MS >= 1)"
        )
    };
    Ok(match s {
        "never" => FsyncPolicy::Never,
        "always" => FsyncPolicy::Always,
        _ => {
            if let Some(n) = s.strip_prefix("every:") {
                let n: u32 = n.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                FsyncPolicy::EveryN(n)
            } else if let Some(ms) = s.strip_prefix("interval:") {
                let ms: u64 = ms.parse().map_err(|_| bad())?;
                if ms == 0 {
                    return Err(bad());
                }
                FsyncPolicy::Interval(std::time::Duration::from_millis(ms))
            } else {
                return Err(bad());
            }
        }
    })
}

/// `[metrics]`: StatsD shipping, slow-callback threshold, latency reports.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// StatsD daemon `host:port` (UDP); none: no shipping.
    pub statsd: Option<String>,
    /// Prefix of every metric name.
    pub prefix: String,
    /// Snapshot interval (ms).
    pub interval_ms: u64,
    /// A strategy callback longer than this is slow (µs).
    pub slow_callback_us: u64,
    /// Write `.hgrm` files, `latency.svg` and `latency.hlog` here at the end of the run.
    pub report_dir: Option<String>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            statsd: None,
            prefix: "tickline.".into(),
            interval_ms: 1000,
            slow_callback_us: 50,
            report_dir: None,
        }
    }
}

/// `[venue]`: where the live engine connects and what it subscribes to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenueSection {
    /// WebSocket base URL (`wss://stream.binance.com:9443`, the simulator's `ws://127.0.0.1:P`), or
    /// a raw feed (`tcp://host:port`).
    pub ws_url: String,
    /// REST base URL for depth snapshots and exchangeInfo.
    pub rest_url: String,
    /// Every symbol the engine knows (its symbol table is fixed at start): only these can trade,
    /// now or later through `tickline ctl start-trading`.
    pub symbols: Vec<String>,
    /// The symbols that trade (and are subscribed) from the start; the others are known but idle
    /// until `start-trading`. Default: every symbol of `symbols`.
    pub trade: Option<Vec<String>>,
    /// Streams per symbol (`trade`, `aggTrade`, `bookTicker`, `depth@100ms`, ...).
    pub streams: Vec<String>,
    /// `url`: one combined-stream URL (`/stream?streams=...`); `messages`: connect to `/ws`
    /// and send `SUBSCRIBE`.
    pub subscribe: String,
    /// Extra CA certificate (PEM) to trust, for a venue with a private or self-signed certificate.
    pub ca_file: Option<String>,
    /// Levels per side of the REST depth snapshot.
    pub snapshot_limit: u32,
    /// Fetch tick, lot and min notional from exchangeInfo at start-up.
    pub exchange_info: bool,
    /// Accept `ws://`, `tcp://` or `http://` URLs to a host that is not loopback (market data
    /// anyone on the path can read and alter; a warning is printed at start).
    pub allow_plaintext: bool,
}

impl Default for VenueSection {
    fn default() -> Self {
        VenueSection {
            ws_url: "wss://stream.binance.com:9443".into(),
            rest_url: "https://api.binance.com".into(),
            symbols: vec!["BTCUSDT".into()],
            trade: None,
            streams: vec!["trade".into(), "bookTicker".into(), "depth@100ms".into()],
            subscribe: "url".into(),
            ca_file: None,
            snapshot_limit: 1000,
            exchange_info: true,
            allow_plaintext: false,
        }
    }
}

impl VenueSection {
    /// Lower-case stream names, `<symbol>@<stream>` for every symbol that trades from the start
    /// ([`trading_at_start`](Self::trading_at_start)) and every stream.
    pub fn stream_names(&self) -> Vec<String> {
        self.symbols
            .iter()
            .filter(|s| self.trading_at_start(s))
            .flat_map(|sym| self.streams_of(sym))
            .collect()
    }

    /// Lower-case stream names of one symbol, `<symbol>@<stream>` for every stream.
    pub fn streams_of(&self, symbol: &str) -> Vec<String> {
        let sym = symbol.to_ascii_lowercase();
        self.streams
            .iter()
            .map(|st| format!("{sym}@{st}"))
            .collect()
    }

    /// True if `symbol` (any case) trades from the start: listed in `trade`, or `trade` unset.
    pub fn trading_at_start(&self, symbol: &str) -> bool {
        match &self.trade {
            None => true,
            Some(t) => t.iter().any(|s| s.eq_ignore_ascii_case(symbol)),
        }
    }

    /// True if the venue URL is a raw feed (`tcp://`, `tls://`): every symbol arrives, nothing
    /// can be subscribed.
    pub fn is_raw_feed(&self) -> bool {
        self.ws_url.starts_with("tcp://") || self.ws_url.starts_with("tls://")
    }

    /// True if the books are fed depth diffs, so they sync from REST depth snapshots: a raw
    /// feed (whatever the venue sends), or a diff-depth stream (`depth`, `depth@100ms`). A
    /// config without one (trade-only, bookTicker, partial-depth `depth5`) asks for no snapshot.
    pub fn carries_depth(&self) -> bool {
        self.is_raw_feed()
            || self
                .streams
                .iter()
                .any(|s| s == "depth" || s.starts_with("depth@"))
    }

    /// The URL to connect to and the streams to send in `SUBSCRIBE` (empty for `url` mode).
    pub fn connect_target(&self) -> (String, Vec<String>) {
        let base = self.ws_url.trim_end_matches('/');
        if self.is_raw_feed() {
            return (base.to_string(), Vec::new());
        }
        let names = self.stream_names();
        match self.subscribe.as_str() {
            "messages" => (format!("{base}/ws"), names),
            // Nothing to trade at start: a combined connection without streams, subscribed to
            // by `start-trading`.
            _ if names.is_empty() => (format!("{base}/stream"), Vec::new()),
            _ => (
                format!("{base}/stream?streams={}", names.join("/")),
                Vec::new(),
            ),
        }
    }
}

/// `[net]`: connection limits, heartbeat, idle timeout and reconnect policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSection {
    /// Largest WebSocket frame accepted, bytes.
    pub max_frame_size: usize,
    /// Largest WebSocket message accepted, bytes.
    pub max_message_size: usize,
    /// A connection that delivers nothing for this long is dead (ms).
    pub idle_timeout_ms: u64,
    /// WebSocket ping interval (ms).
    pub heartbeat_ms: u64,
    /// Connect (TCP + TLS + WebSocket handshakes) deadline (ms).
    pub connect_timeout_ms: u64,
    /// First reconnect delay (ms).
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay (ms).
    pub reconnect_max_ms: u64,
    /// Backoff factor.
    pub reconnect_factor: f64,
    /// Jitter, a fraction of the delay (0..1).
    pub reconnect_jitter: f64,
    /// Give up after this many failed attempts in a row (0: never).
    pub reconnect_max_attempts: u32,
    /// Busy-poll the sockets (lowest latency, burns the I/O CPU).
    pub spin: bool,
}

impl Default for NetSection {
    fn default() -> Self {
        NetSection {
            max_frame_size: 1 << 20,
            max_message_size: 4 << 20,
            idle_timeout_ms: 10_000,
            heartbeat_ms: 5_000,
            connect_timeout_ms: 5_000,
            reconnect_initial_ms: 100,
            reconnect_max_ms: 10_000,
            reconnect_factor: 2.0,
            reconnect_jitter: 0.2,
            reconnect_max_attempts: 0,
            spin: false,
        }
    }
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// CPU of the I/O thread (-1: unpinned). Unset: the first CPU the process is allowed
    /// (its affinity mask and cgroup cpuset; see [`crate::pin`]).
    pub io_cpu: Option<i64>,
    /// CPU of the core thread (-1: unpinned). Unset: the second CPU the process is allowed
    /// (with only one, the I/O and core threads run unpinned, with a warning).
    pub core_cpu: Option<i64>,
    /// CPUs of every other thread (metrics, REST, control, recorder, the simulator in `demo`;
    /// `tickline` itself places its main thread there too, so threads spawned by libraries
    /// inherit them). Unset: the I/O CPU. Never the core's CPU, or a warning says so.
    pub housekeeping_cpus: Option<Vec<usize>>,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)` at start-up, where permitted (`CAP_IPC_LOCK` or an
    /// unlimited `RLIMIT_MEMLOCK`; otherwise one warning line, never a failure). Unset: on for
    /// `run` (and the live `demo`), off for `replay`.
    pub mlockall: Option<bool>,
    /// Idle policy name.
    pub idle: String,
    /// Ring capacity in events.
    pub ring_capacity: usize,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            io_cpu: None,
            core_cpu: None,
            housekeeping_cpus: None,
            mlockall: None,
            idle: "spin".into(),
            ring_capacity: 65_536,
        }
    }
}

/// `[paper]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaperSection {
    /// Order latency, µs of venue time.
    pub latency_us: u64,
    /// Maker fee rate as a decimal string.
    pub maker_fee: String,
    /// Taker fee rate as a decimal string.
    pub taker_fee: String,
}

impl Default for PaperSection {
    fn default() -> Self {
        PaperSection {
            latency_us: 1000,
            maker_fee: "0.001".into(),
            taker_fee: "0.001".into(),
        }
    }
}

/// `[strategy]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategySection {
    /// Strategy name, or `none`.
    pub name: String,
    /// A WebAssembly module to run instead of `name` (its parameters are `params`, with the
    /// host's `fuel`, `memory_mb`, `orders_per_callback`, `max_restarts`, `restart_window_ms`).
    pub wasm: Option<String>,
    /// Parameters (strings, integers, floats or booleans; handed to the strategy as text).
    pub params: BTreeMap<String, toml::Value>,
}

impl Default for StrategySection {
    fn default() -> Self {
        StrategySection {
            name: "naive".into(),
            wasm: None,
            params: BTreeMap::new(),
        }
    }
}

/// `[replay]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplaySection {
    /// Symbol of symbol-less records (a line capture's REST snapshot).
    pub symbol: String,
    /// Pace.
    pub pace: String,
}

impl Default for ReplaySection {
    fn default() -> Self {
        ReplaySection {
            symbol: "BTCUSDT".into(),
            pace: "asap".into(),
        }
    }
}

/// Replay pacing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the pipeline goes.
    Asap,
    /// Keep the capture's gaps, divided by the factor (`recorded` = 1, `x10` = ten times faster).
    Scaled(f64),
}

impl std::str::FromStr for Pace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "asap" => Ok(Pace::Asap),
            "recorded" => Ok(Pace::Scaled(1.0)),
            _ => {
                let f = s
                    .strip_prefix('x')
                    .and_then(|n| n.parse::<f64>().ok())
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .ok_or_else(|| {
                        format!(
                            "bad pace {s:?}: expected asap, recorded, or xN with N > 0 (x10, x0.5)"
                        )
                    })?;
                Ok(Pace::Scaled(f))
            }
        }
    }
}

/// A TOML syntax or type error as `line L, column C: `section.key`: what went wrong`, built from
/// the error's message and span only. toml's own rendering quotes the offending line, and a
/// config line may hold a secret (`[orders] api_secret = "..."` is refused as an unknown key,
/// and must not be printed while it is): no line of the file is echoed, and any value in the
/// message (`invalid type: string "...", expected u32`) is replaced by `(value not shown)`.
fn toml_error(text: &str, e: &toml::de::Error) -> anyhow::Error {
    let mut msg = scrub_quoted(e.message().trim()).replace('\n', "; ");
    let Some(span) = e.span() else {
        return anyhow::anyhow!("{msg}");
    };
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(span.start);
    let end = floor(span.end).max(start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let line_no = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    // A value in backticks (`invalid value: integer `123``) is not caught by the scrub: take out
    // every value written on the lines the error points at.
    for line in text[line_start..line_end].lines() {
        for v in line_values(line) {
            if v.chars().count() >= 3 {
                msg = msg.replace(v, "(value not shown)");
            }
        }
    }
    let line = &text[line_start..line_end];
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| is_plain_key(k) && !line.trim_start().starts_with('['))
        .map(|k| match table_of(&text[..line_start]) {
            Some(t) => format!("`{t}.{k}`: "),
            None => format!("`{k}`: "),
        })
        .unwrap_or_default();
    anyhow::anyhow!("line {line_no}, column {column}: {key}{msg}")
}

/// `msg` with every `"..."` replaced by `(value not shown)`; text in backticks is kept (toml and
/// serde name keys and expected tokens that way).
fn scrub_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push('`');
                for c in chars.by_ref() {
                    out.push(c);
                    if c == '`' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("(value not shown)");
            }
            c => out.push(c),
        }
    }
    out
}

/// What follows `=` on a config line, as written and without its quotes or trailing comment.
fn line_values(line: &str) -> Vec<&str> {
    let Some((_, v)) = line.split_once('=') else {
        return Vec::new();
    };
    let v = v.trim();
    let mut out = vec![v];
    if let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let inner = &v[1..];
        out.push(inner.split(q).next().unwrap_or(inner));
    } else {
        out.push(v.split(['#', ' ', '\t', ',']).next().unwrap_or(v));
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A bare (or dotted) TOML key: safe to print.
fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// The table the text before a line ends in (`orders` after `[orders]`), if plainly named.
fn table_of(before: &str) -> Option<&str> {
    let header = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))?;
    let name = header
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or_default()
        .trim();
    is_plain_key(name).then_some(name)
}

/// The host of `scheme://[user@]host[:port][/path]`, lower-case, IPv6 without brackets.
fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    (!host.is_empty()).then(|| host.trim_end_matches('.').to_ascii_lowercase())
}

/// True for a loopback host: `localhost`, 127.0.0.0/8, `::1` (also as `::ffff:127.x.y.z`).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => false,
    }
}

/// The unencrypted scheme of `url` (`ws`, `http`, `tcp`) when it points at a host that is not
/// loopback (or names no host at all).
pub(crate) fn plaintext_to_remote(url: &str) -> Option<&'static str> {
    let scheme = url.trim().split_once("://")?.0.to_ascii_lowercase();
    let scheme = ["ws", "http", "tcp"]
        .into_iter()
        .find(|s| *s == scheme.as_str())?;
    (!url_host(url).is_some_and(|h| is_loopback_host(&h))).then_some(scheme)
}

/// Largest `venue.snapshot_limit` (Binance's depth endpoint serves at most 5,000 levels a side).
pub const MAX_SNAPSHOT_LIMIT: u32 = 5000;

/// Largest `risk.max_open_orders` (per symbol; Binance allows 200 open orders on a symbol). The
/// core's order table holds `max_open_orders` x symbols entries, allocated at start-up.
pub const MAX_OPEN_ORDERS_CAP: u32 = 10_000;

/// Largest order table (`risk.max_open_orders` x `venue.symbols`): a few tens of MB.
pub const MAX_ORDER_TABLE: u64 = 1_000_000;

/// Connection id of the live engine's market-data connection (notices, captures).
pub const MARKET_CONN_ID: u32 = 1;

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value (after command-line overrides, too).
    pub fn validate(&self) -> Result<()> {
        self.idle_mode().context("engine.idle")?;
        self.health.addr()?;
        if !(100..=60_000).contains(&self.health.live_max_ms) {
            bail!(
                "health.live_max_ms = {}: must be in 100..=60000",
                self.health.live_max_ms
            );
        }
        if !matches!(self.orders.on_shutdown.as_str(), "cancel" | "keep") {
            bail!(
                "orders.on_shutdown = {:?}: expected \"cancel\" or \"keep\"",
                self.orders.on_shutdown
            );
        }
        if !(1..=1024).contains(&self.orders.shards) || self.orders.shard >= self.orders.shards {
            bail!(
                "orders.shard = {}, orders.shards = {}: shards must be in 1..=1024 and shard below it",
                self.orders.shard,
                self.orders.shards
            );
        }
        if !(1000..=600_000).contains(&self.orders.shutdown_timeout_ms) {
            bail!(
                "orders.shutdown_timeout_ms = {}: must be in 1000..=600000",
                self.orders.shutdown_timeout_ms
            );
        }
        if self.engine.ring_capacity < 1024 || self.engine.ring_capacity > (1 << 26) {
            bail!(
                "engine.ring_capacity = {}: must be in 1024..=67108864",
                self.engine.ring_capacity
            );
        }
        for (key, v) in [
            ("engine.io_cpu", self.engine.io_cpu),
            ("engine.core_cpu", self.engine.core_cpu),
        ] {
            if let Some(v) = v.filter(|v| !(-1..=4095).contains(v)) {
                bail!("{key} = {v}: must be a CPU number, or -1 for unpinned");
            }
        }
        if let Some(c) = self
            .engine
            .housekeeping_cpus
            .iter()
            .flatten()
            .find(|&&c| c > 4095)
        {
            bail!("engine.housekeeping_cpus: {c} is not a CPU number");
        }
        for (key, v) in [
            ("paper.maker_fee", &self.paper.maker_fee),
            ("paper.taker_fee", &self.paper.taker_fee),
        ] {
            engine::fixed::parse_fixed(v.as_bytes())
                .map_err(|e| anyhow::anyhow!("{key} = {v:?}: {e}"))?;
        }
        self.pace().context("replay.pace")?;
        let mut venue_symbols = engine::symbol::SymbolTable::new();
        if self.venue.symbols.is_empty() && self.feeds.is_empty() {
            bail!("venue.symbols: at least one symbol (or a [[feeds]] table)");
        }
        crate::venues::validate(self)?;
        for s in &self.venue.symbols {
            venue_symbols
                .intern(s)
                .map_err(|e| anyhow::anyhow!("venue.symbols: {e}"))?;
        }
        for s in self.venue.trade.iter().flatten() {
            if venue_symbols.lookup(s.as_bytes()).is_none() {
                bail!(
                    "venue.trade: {s} is not in venue.symbols ({}); add it there",
                    self.venue.symbols.join(", ")
                );
            }
        }
        if !matches!(self.venue.subscribe.as_str(), "url" | "messages") {
            bail!(
                "venue.subscribe = {:?}: expected \"url\" or \"messages\"",
                self.venue.subscribe
            );
        }
        for (key, url) in [("venue.ws_url", &self.venue.ws_url)] {
            if !["ws://", "wss://", "tcp://", "tls://"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                bail!("{key} = {url:?}: expected ws://, wss://, tcp:// or tls://");
            }
        }
        if !["http://", "https://"]
            .iter()
            .any(|p| self.venue.rest_url.starts_with(p))
        {
            bail!(
                "venue.rest_url = {:?}: expected http:// or https://",
                self.venue.rest_url
            );
        }
        for (key, url, allow) in self.plaintext_urls() {
            if let Some(scheme) = plaintext_to_remote(url) {
                if !self.plaintext_allowed(allow) {
                    bail!(
                        "{key} = {url:?}: {scheme}:// is unencrypted and the host is not loopback ({}); use {} or set {allow} = true to accept it",
                        if key == "orders.url" {
                            "the API key and signed orders would cross the network in clear"
                        } else {
                            "market data anyone on the path can read and alter"
                        },
                        match scheme {
                            "http" => "https://",
                            "tcp" => "tls://",
                            _ => "wss://",
                        }
                    );
                }
            }
        }
        if !(1..=MAX_SNAPSHOT_LIMIT).contains(&self.venue.snapshot_limit) {
            bail!(
                "venue.snapshot_limit = {}: must be in 1..={MAX_SNAPSHOT_LIMIT} (levels per side of the REST depth snapshot)",
                self.venue.snapshot_limit
            );
        }
        let n = &self.net;
        if !(n.reconnect_factor >= 1.0 && n.reconnect_factor <= 100.0) {
            bail!(
                "net.reconnect_factor = {}: must be in 1..=100",
                n.reconnect_factor
            );
        }
        if !(0.0..1.0).contains(&n.reconnect_jitter) {
            bail!(
                "net.reconnect_jitter = {}: must be in 0..1",
                n.reconnect_jitter
            );
        }
        for (key, v) in [
            ("net.idle_timeout_ms", n.idle_timeout_ms),
            ("net.heartbeat_ms", n.heartbeat_ms),
            ("net.connect_timeout_ms", n.connect_timeout_ms),
            ("net.reconnect_initial_ms", n.reconnect_initial_ms),
            ("net.reconnect_max_ms", n.reconnect_max_ms),
        ] {
            if v == 0 {
                bail!("{key}: must be positive");
            }
        }
        if n.reconnect_initial_ms > n.reconnect_max_ms {
            bail!(
                "net.reconnect_initial_ms = {} is above net.reconnect_max_ms = {}: the first reconnect delay cannot exceed the longest",
                n.reconnect_initial_ms,
                n.reconnect_max_ms
            );
        }
        if n.heartbeat_ms >= n.idle_timeout_ms {
            bail!(
                "net.heartbeat_ms = {} is not below net.idle_timeout_ms = {}: a quiet but healthy connection would be dropped before its ping is answered",
                n.heartbeat_ms,
                n.idle_timeout_ms
            );
        }
        let m = &self.metrics;
        if let Some(addr) = &m.statsd {
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                bail!("metrics.statsd = {addr:?}: expected HOST:PORT");
            }
        }
        if !(10..=3_600_000).contains(&m.interval_ms) {
            bail!(
                "metrics.interval_ms = {}: must be in 10..=3600000",
                m.interval_ms
            );
        }
        if m.slow_callback_us == 0 {
            bail!("metrics.slow_callback_us: must be positive");
        }
        if n.max_frame_size < 1024 || n.max_message_size < n.max_frame_size {
            bail!("net.max_frame_size / net.max_message_size: need 1024 <= frame <= message");
        }
        let mut symbols = engine::symbol::SymbolTable::new();
        symbols
            .intern(&self.replay.symbol)
            .map_err(|e| anyhow::anyhow!("replay.symbol: {e}"))?;
        if self.strategy.name != "none" && self.strategy.wasm.is_none() {
            strategies::build(&self.strategy.name, self.strategy_params())
                .map_err(|e| anyhow::anyhow!("strategy: {e}"))?;
        }
        self.risk.limits()?;
        let r = &self.risk;
        if r.max_open_orders == 0 || r.max_open_orders > MAX_OPEN_ORDERS_CAP {
            bail!(
                "risk.max_open_orders = {}: must be in 1..={MAX_OPEN_ORDERS_CAP} (the core's order table is sized from it at start-up)",
                r.max_open_orders
            );
        }
        let table = u64::from(r.max_open_orders) * self.venue.symbols.len() as u64;
        if table > MAX_ORDER_TABLE {
            bail!(
                "risk.max_open_orders = {} x {} venue.symbols = {table} orders: the core's order table would pass {MAX_ORDER_TABLE} entries; lower risk.max_open_orders",
                r.max_open_orders,
                self.venue.symbols.len()
            );
        }
        if r.burst == 0 {
            bail!("risk.burst: must be positive (with 0, no order ever passes the rate limit)");
        }
        let o = &self.orders;
        fsync_policy(&o.fsync)?;
        if o.enabled {
            if !["ws://", "wss://"].iter().any(|p| o.url.starts_with(p)) {
                bail!("orders.url = {:?}: expected ws:// or wss://", o.url);
            }
            if o.journal.is_empty() {
                bail!(
                    "orders.journal: a path is needed (the journal is what makes a restart safe)"
                );
            }
            if o.credentials_env.is_empty() && o.credentials_file.is_none() {
                bail!("orders: set credentials_env or credentials_file");
            }
        }
        if o.recv_window_ms > 60_000 {
            bail!(
                "orders.recv_window_ms = {}: the venue accepts at most 60000",
                o.recv_window_ms
            );
        }
        if o.ack_timeout_ms == 0 {
            bail!("orders.ack_timeout_ms: must be positive");
        }
        if o.conn_id == feeds::rest::REST_CONN_ID || o.conn_id == MARKET_CONN_ID {
            bail!(
                "orders.conn_id = {}: taken (the market-data connection is {MARKET_CONN_ID}, the REST side {})",
                o.conn_id,
                feeds::rest::REST_CONN_ID
            );
        }
        self.control.endpoint()?;
        if self.control.token_file.as_deref() == Some("") {
            bail!("control.token_file: an empty path");
        }
        if !(1..=600_000).contains(&self.control.reply_timeout_ms) {
            bail!(
                "control.reply_timeout_ms = {}: must be in 1..=600000",
                self.control.reply_timeout_ms
            );
        }
        Ok(())
    }

    /// Every URL key with the key of the switch that allows it plaintext to a remote host:
    /// `venue.ws_url` and `venue.rest_url` (`venue.allow_plaintext`), and `orders.url`
    /// (`orders.allow_plaintext`) when orders are enabled.
    fn plaintext_urls(&self) -> Vec<(&'static str, &str, &'static str)> {
        let mut v = vec![
            (
                "venue.ws_url",
                self.venue.ws_url.as_str(),
                "venue.allow_plaintext",
            ),
            (
                "venue.rest_url",
                self.venue.rest_url.as_str(),
                "venue.allow_plaintext",
            ),
        ];
        if self.orders.enabled {
            v.push((
                "orders.url",
                self.orders.url.as_str(),
                "orders.allow_plaintext",
            ));
        }
        v
    }

    fn plaintext_allowed(&self, key: &str) -> bool {
        match key {
            "orders.allow_plaintext" => self.orders.allow_plaintext,
            _ => self.venue.allow_plaintext,
        }
    }

    /// One warning per URL that goes unencrypted to a host that is not loopback (allowed by
    /// `allow_plaintext`; [`validate`](Self::validate) refuses it otherwise). `run_live` prints
    /// them at start.
    pub fn plaintext_warnings(&self) -> Vec<String> {
        self.plaintext_urls()
            .into_iter()
            .filter_map(|(key, url, allow)| {
                let scheme = plaintext_to_remote(url)?;
                Some(format!(
                    "warning: {key} = {url:?} is plaintext ({scheme}://) to a host that is not loopback, allowed by {allow} = true: {}",
                    if key == "orders.url" {
                        "the API key and every signed order cross the network unencrypted"
                    } else {
                        "anyone on the path can read and alter this market data"
                    }
                ))
            })
            .collect()
    }

    /// The idle mode.
    pub fn idle_mode(&self) -> Result<IdleMode> {
        self.engine
            .idle
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))
    }

    /// The pace.
    pub fn pace(&self) -> Result<Pace> {
        self.replay
            .pace
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))
    }

    /// The strategy parameters as text.
    pub fn strategy_params(&self) -> engine::strategy::Params {
        engine::strategy::Params::new(self.strategy.params.iter().map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        }))
    }

    /// The `[strategy] wasm` module as a strategy factory (compiled and deployed once now, so a
    /// bad module fails here), or `None` without one.
    pub fn wasm_strategy(&self) -> Result<Option<crate::runtime::StrategyFactory>> {
        let Some(path) = &self.strategy.wasm else {
            return Ok(None);
        };
        let pairs: Vec<(String, String)> = self
            .strategy_params()
            .pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::wasm::factory(std::path::Path::new(path), &pairs).map(Some)
    }

    /// CPU option: -1 means unpinned.
    pub fn cpu(v: i64) -> Option<usize> {
        usize::try_from(v).ok()
    }

    /// Where the run's threads go: `engine.io_cpu`, `engine.core_cpu` and
    /// `engine.housekeeping_cpus`, the unset ones chosen from the CPUs this process is allowed
    /// ([`crate::pin::Placement::detect`], which prints its warnings).
    pub fn placement(&self) -> crate::pin::Placement {
        crate::pin::Placement::detect(
            self.engine.io_cpu,
            self.engine.core_cpu,
            self.engine.housekeeping_cpus.as_deref(),
        )
    }

    /// The metrics hand-off settings: shipping to `metrics.statsd` when set; `always` runs the
    /// metrics thread even without StatsD (it still logs slow callbacks; live runs use it).
    pub fn metrics_config(&self, always: bool) -> Option<crate::metrics::MetricsConfig> {
        (always || self.metrics.statsd.is_some()).then(|| crate::metrics::MetricsConfig {
            statsd: self.metrics.statsd.clone(),
            prefix: self.metrics.prefix.clone(),
            interval: std::time::Duration::from_millis(self.metrics.interval_ms),
            ..crate::metrics::MetricsConfig::default()
        })
    }

    /// The core's settings for `symbols` symbols: paper venue, slow-callback threshold, risk.
    ///
    /// With risk in force (`risk.enabled` or `orders.enabled`) the core's order table holds
    /// `risk.max_open_orders` x `symbols` orders, allocated here once; without it, the core's
    /// default (1,024). `depth_snapshots` follows the streams: REST snapshots are asked for
    /// only when a depth-diff stream (or a raw feed) carries the books.
    pub fn core_config(&self, symbols: usize) -> engine::core::CoreConfig {
        let risk = (self.risk.enabled || self.orders.enabled)
            .then(|| self.risk.limits().ok())
            .flatten();
        let d = engine::core::CoreConfig::default();
        engine::core::CoreConfig {
            paper: self.paper_config(),
            slow_callback_ns: self.metrics.slow_callback_us.saturating_mul(1000),
            ack_timeout_ns: self.orders.ack_timeout_ms.saturating_mul(1_000_000),
            max_open_orders: match &risk {
                Some(l) => (l.max_open_orders as usize).saturating_mul(symbols.max(1)),
                None => d.max_open_orders,
            },
            risk,
            ..d
        }
    }

    /// The paper venue's settings.
    pub fn paper_config(&self) -> engine::paper::PaperConfig {
        let rate = |s: &str| engine::fixed::parse_fixed(s.as_bytes()).unwrap_or(0);
        engine::paper::PaperConfig {
            latency_ns: self.paper.latency_us.saturating_mul(1000),
            maker_fee_rate: rate(&self.paper.maker_fee),
            taker_fee_rate: rate(&self.paper.taker_fee),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.engine.core_cpu, None);
        let c = Config::parse(
            "[engine]\ncore_cpu = -1\nhousekeeping_cpus = [0, 2]\nmlockall = false\n",
        )
        .unwrap();
        assert_eq!(c.engine.core_cpu, Some(-1));
        assert_eq!(c.engine.housekeeping_cpus, Some(vec![0, 2]));
        assert_eq!(c.engine.mlockall, Some(false));
        assert!(Config::parse("[engine]\nhousekeeping_cpus = [5000]\n")
            .unwrap_err()
            .to_string()
            .contains("housekeeping_cpus"));
        assert_eq!(c.pace().unwrap(), Pace::Asap);
    }

    #[test]
    fn health_shutdown_and_shard_settings_are_checked() {
        let c = Config::parse("").unwrap();
        assert!(
            c.health.addr().unwrap().is_none(),
            "health is off by default"
        );
        assert!(c.orders.cancel_on_shutdown());
        let c = Config::parse(
            "[health]\nlisten = \"127.0.0.1:8080\"\n[orders]\non_shutdown = \"keep\"\nshard = 2\nshards = 3\n",
        )
        .unwrap();
        assert_eq!(c.health.addr().unwrap().unwrap().port(), 8080);
        assert!(!c.orders.cancel_on_shutdown());
        for (text, key) in [
            ("[health]\nlisten = \"8080\"\n", "health.listen"),
            ("[health]\nlive_max_ms = 10\n", "health.live_max_ms"),
            (
                "[orders]\non_shutdown = \"flatten\"\n",
                "orders.on_shutdown",
            ),
            (
                "[orders]\nshutdown_timeout_ms = 0\n",
                "orders.shutdown_timeout_ms",
            ),
            ("[orders]\nshard = 3\nshards = 3\n", "orders.shard"),
            ("[orders]\nshards = 0\n", "orders.shards"),
        ] {
            let e = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = format!(
            "{:#}",
            Config::parse("[engine]\nio_cpux = 3\n").unwrap_err()
        );
        assert!(e.contains("io_cpux"), "{e}");
        let e = format!("{:#}", Config::parse("[engin]\n").unwrap_err());
        assert!(e.contains("engin"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = format!(
            "{:#}",
            Config::parse("[engine]\nidle = \"fast\"\n").unwrap_err()
        );
        assert!(e.contains("engine.idle") && e.contains("fast"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[engine]\nring_capacity = 3\n").unwrap_err()
        );
        assert!(e.contains("engine.ring_capacity"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[replay]\npace = \"x0\"\n").unwrap_err()
        );
        assert!(e.contains("replay.pace"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[engine]\ncore_cpu = \"one\"\n").unwrap_err()
        );
        assert!(e.contains("core_cpu"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[strategy]\nname = \"naive\"\n[strategy.params]\nchunkz = 2\n")
                .unwrap_err()
        );
        assert!(e.contains("chunkz"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[paper]\ntaker_fee = \"abc\"\n").unwrap_err()
        );
        assert!(e.contains("paper.taker_fee"), "{e}");
    }

    #[test]
    fn venue_urls_and_checks() {
        let c = Config::parse(
            "[venue]\nws_url = \"ws://127.0.0.1:9001\"\nsymbols = [\"BTCUSDT\", \"ethusdt\"]\nstreams = [\"trade\", \"depth@100ms\"]\n",
        )
        .unwrap();
        let (url, subs) = c.venue.connect_target();
        assert_eq!(
            url,
            "ws://127.0.0.1:9001/stream?streams=btcusdt@trade/btcusdt@depth@100ms/ethusdt@trade/ethusdt@depth@100ms"
        );
        assert!(subs.is_empty());
        let c = Config::parse("[venue]\nsubscribe = \"messages\"\n").unwrap();
        let (url, subs) = c.venue.connect_target();
        assert_eq!(url, "wss://stream.binance.com:9443/ws");
        assert_eq!(subs.len(), 3);
        for (text, key) in [
            ("[venue]\nws_url = \"http://x\"\n", "venue.ws_url"),
            ("[venue]\nsymbols = []\n", "venue.symbols"),
            ("[venue]\nsubscribe = \"both\"\n", "venue.subscribe"),
            ("[net]\nreconnect_jitter = 1.5\n", "net.reconnect_jitter"),
            ("[net]\nheartbeat_ms = 0\n", "net.heartbeat_ms"),
            ("[net]\nretries = 3\n", "retries"),
            ("[metrics]\nstatsd = \"localhost\"\n", "metrics.statsd"),
            ("[metrics]\ninterval_ms = 1\n", "metrics.interval_ms"),
        ] {
            let e = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn trade_and_control_keys() {
        let c = Config::parse(
            "[venue]\nws_url = \"ws://localhost:1\"\nsymbols = [\"BTCUSDT\", \"ETHUSDT\"]\ntrade = [\"btcusdt\"]\nstreams = [\"trade\"]\n",
        )
        .unwrap();
        assert!(c.venue.trading_at_start("BTCUSDT") && !c.venue.trading_at_start("ETHUSDT"));
        assert_eq!(
            c.venue.connect_target().0,
            "ws://localhost:1/stream?streams=btcusdt@trade"
        );
        assert_eq!(c.venue.streams_of("ETHUSDT"), ["ethusdt@trade"]);
        let c = Config::parse("[venue]\nws_url = \"ws://localhost:1\"\ntrade = []\n").unwrap();
        assert_eq!(c.venue.connect_target().0, "ws://localhost:1/stream");
        // The default: every symbol trades from the start; `run` serves tickline.sock.
        let c = Config::parse("").unwrap();
        assert!(c.venue.trading_at_start("BTCUSDT"));
        assert_eq!(
            c.control.endpoint().unwrap(),
            Some(Endpoint::Unix("tickline.sock".into()))
        );
        assert_eq!(c.control.configured_endpoint().unwrap(), None);
        let c = Config::parse("[control]\ntcp = \"127.0.0.1:7070\"\n").unwrap();
        assert_eq!(
            c.control.endpoint().unwrap(),
            Some(Endpoint::Tcp("127.0.0.1:7070".parse().unwrap()))
        );
        assert_eq!(
            Config::parse("[control]\nenabled = false\n")
                .unwrap()
                .control
                .endpoint()
                .unwrap(),
            None
        );
        for (text, key) in [
            ("[venue]\ntrade = [\"XRPUSDT\"]\n", "venue.trade"),
            ("[control]\ntcp = \"0.0.0.0:7070\"\n", "control.tcp"),
            ("[control]\ntcp = \"10.1.2.3:7070\"\n", "control.tcp"),
            ("[control]\ntcp = \"127.0.0.1\"\n", "control.tcp"),
            (
                "[control]\nsocket = \"a\"\ntcp = \"127.0.0.1:1\"\n",
                "control",
            ),
            (
                "[control]\nreply_timeout_ms = 0\n",
                "control.reply_timeout_ms",
            ),
            ("[control]\nsockt = \"a\"\n", "sockt"),
            ("[control]\ntoken_file = \"\"\n", "control.token_file"),
        ] {
            let e = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text).unwrap_err())
    }

    const ORDERS: &str = "[orders]\nenabled = true\n";

    #[test]
    fn plaintext_orders_url_to_remote_host_is_refused() {
        for url in [
            "ws://10.0.0.7:9000/ws-api/v3",
            "ws://ws-api.example.com/ws-api/v3",
            "ws://[2001:db8::1]:9000/ws-api/v3",
            "ws://127.example.com/ws-api/v3",
            "ws://user@127.0.0.1.example.com/ws-api/v3",
        ] {
            let text = format!("{ORDERS}url = {url:?}\n");
            let e = err(&text);
            assert!(
                e.contains("orders.url") && e.contains("orders.allow_plaintext"),
                "{url}: {e}"
            );
            assert!(e.contains("API key"), "{e}");
            // Allowed explicitly: accepted, with a warning naming the key.
            let c = Config::parse(&format!("{text}allow_plaintext = true\n")).unwrap();
            let w = c.plaintext_warnings();
            assert_eq!(w.len(), 1, "{w:?}");
            assert!(
                w[0].contains("orders.url") && w[0].contains("unencrypted"),
                "{w:?}"
            );
        }
        // Orders off: the URL is not used, so not checked.
        Config::parse("[orders]\nurl = \"ws://10.0.0.7/ws-api/v3\"\n").unwrap();
    }

    #[test]
    fn plaintext_market_data_to_remote_host_is_refused() {
        for (text, key) in [
            ("[venue]\nws_url = \"ws://10.1.1.1:9001\"\n", "venue.ws_url"),
            (
                "[venue]\nws_url = \"tcp://feed.example.com:9001\"\n",
                "venue.ws_url",
            ),
            (
                "[venue]\nrest_url = \"http://api.example.com\"\n",
                "venue.rest_url",
            ),
        ] {
            let e = err(text);
            assert!(
                e.contains(key) && e.contains("venue.allow_plaintext"),
                "{text}: {e}"
            );
            let c = Config::parse(&format!("{text}allow_plaintext = true\n")).unwrap();
            let w = c.plaintext_warnings();
            assert!(w.len() == 1 && w[0].contains(key), "{w:?}");
        }
    }

    #[test]
    fn plaintext_to_loopback_and_encrypted_urls_are_accepted_silently() {
        for host in ["127.0.0.1", "127.3.2.1", "localhost", "LOCALHOST", "[::1]"] {
            let c = Config::parse(&format!(
                "[venue]\nws_url = \"ws://{host}:9001\"\nrest_url = \"http://{host}:9002\"\n{ORDERS}url = \"ws://{host}:9001/ws-api/v3\"\n"
            ))
            .unwrap();
            assert!(c.plaintext_warnings().is_empty(), "{host}");
        }
        let c = Config::parse(&format!(
            "[venue]\nws_url = \"tls://feed.example.com:9001\"\n{ORDERS}url = \"wss://10.0.0.7/ws-api/v3\"\n"
        ))
        .unwrap();
        assert!(c.plaintext_warnings().is_empty());
        assert!(Config::parse("").unwrap().plaintext_warnings().is_empty());
        for (host, lo) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("localhost", true),
            ("128.0.0.1", false),
            ("localhost.example.com", false),
            ("0.0.0.0", false),
        ] {
            assert_eq!(is_loopback_host(host), lo, "{host}");
        }
    }

    /// A fake secret in every shape of mistake: the error names the key and the line, never
    /// the value or the line itself.
    #[test]
    fn config_error_never_echoes_a_secret() {
        const SECRET: &str = "zq9SECRETvK3xP7mT2wR8nL4";
        let cases = [
            // Unknown key (the key is named).
            (
                format!("[orders]\napi_secret = \"{SECRET}\"\n"),
                Some("api_secret"),
                2,
            ),
            (
                format!("[orders]\napi_secret = '{SECRET}'\n"),
                Some("api_secret"),
                2,
            ),
            // Wrong type: a string where a number goes, and the other way round.
            (
                format!("[orders]\nconn_id = \"{SECRET}\"\n"),
                Some("orders.conn_id"),
                2,
            ),
            (
                "[orders]\nenabled = false\nurl = 123456789123\n".to_string(),
                Some("orders.url"),
                3,
            ),
            (
                format!("[orders]\ncredentials_env = [\"{SECRET}\"]\n"),
                Some("orders.credentials_env"),
                2,
            ),
            // Syntax errors on the secret's line.
            (format!("[orders]\napi_secret = {SECRET}\n"), None, 2),
            (format!("[orders]\napi_secret = \"{SECRET}\n"), None, 2),
            (
                format!("[orders]\napi_secret = \"{SECRET}\" junk\n"),
                None,
                2,
            ),
            (format!("[orders]\n{SECRET}\n"), None, 2),
            (
                format!("[orders]\napi_secret = \"{SECRET}\"\napi_secret = \"{SECRET}\"\n"),
                None,
                3,
            ),
            // A secret in a table that takes any key: accepted there, so no error to check.
        ];
        for (text, key, line) in &cases {
            let e = err(text);
            assert!(!e.contains(SECRET), "{text:?} echoed the secret: {e}");
            assert!(!e.contains("SECRET"), "{text:?}: part of the secret: {e}");
            assert!(!e.contains(" | "), "{text:?}: a source snippet: {e}");
            assert!(e.contains(&format!("line {line}")), "{text:?}: {e}");
            if let Some(k) = key {
                assert!(e.contains(k), "{text:?}: the key is not named: {e}");
            }
        }
        // The number, too, when it is the value of a wrong type.
        let e = err("[orders]\nurl = 123456789123\n");
        assert!(!e.contains("123456789123"), "{e}");
        // The other tables' errors are reported the same way.
        let e = err("[engine]\ncore_cpu = \"one\"\n");
        assert!(
            e.contains("line 2, column 12") && e.contains("engine.core_cpu"),
            "{e}"
        );
    }

    #[test]
    fn reconnect_initial_above_max_is_refused() {
        let e = err("[net]\nreconnect_initial_ms = 5000\nreconnect_max_ms = 1000\n");
        assert!(
            e.contains("net.reconnect_initial_ms") && e.contains("net.reconnect_max_ms"),
            "{e}"
        );
        Config::parse("[net]\nreconnect_initial_ms = 1000\nreconnect_max_ms = 1000\n").unwrap();
    }

    #[test]
    fn heartbeat_not_below_idle_timeout_is_refused() {
        for hb in [3000, 4000] {
            let e = err(&format!(
                "[net]\nheartbeat_ms = {hb}\nidle_timeout_ms = 3000\n"
            ));
            assert!(
                e.contains("net.heartbeat_ms") && e.contains("net.idle_timeout_ms"),
                "{e}"
            );
        }
        Config::parse("[net]\nheartbeat_ms = 2999\nidle_timeout_ms = 3000\n").unwrap();
    }

    #[test]
    fn zero_and_out_of_range_values_are_refused() {
        for (text, key) in [
            ("[venue]\nsnapshot_limit = 0\n", "venue.snapshot_limit"),
            ("[venue]\nsnapshot_limit = 5001\n", "venue.snapshot_limit"),
            ("[risk]\nburst = 0\n", "risk.burst"),
            ("[risk]\nmax_open_orders = 0\n", "risk.max_open_orders"),
            ("[orders]\nconn_id = 1\n", "orders.conn_id"),
            ("[orders]\nconn_id = 0\n", "orders.conn_id"),
        ] {
            let e = err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
        Config::parse("[venue]\nsnapshot_limit = 5000\n").unwrap();
    }

    #[test]
    fn max_open_orders_above_the_cap_is_refused() {
        let e = err(&format!(
            "[risk]\nmax_open_orders = {}\n",
            MAX_OPEN_ORDERS_CAP + 1
        ));
        assert!(
            e.contains("risk.max_open_orders") && e.contains("10000"),
            "{e}"
        );
        Config::parse(&format!(
            "[risk]\nmax_open_orders = {MAX_OPEN_ORDERS_CAP}\n"
        ))
        .unwrap();
        // The table over every symbol is bounded too.
        let symbols: Vec<String> = (0..101).map(|i| format!("\"S{i}USDT\"")).collect();
        let e = err(&format!(
            "[venue]\nsymbols = [{}]\n[risk]\nmax_open_orders = {MAX_OPEN_ORDERS_CAP}\n",
            symbols.join(", ")
        ));
        assert!(
            e.contains("risk.max_open_orders") && e.contains("venue.symbols"),
            "{e}"
        );
    }

    #[test]
    fn order_table_follows_max_open_orders() {
        let c = Config::parse("[risk]\nenabled = true\nmax_open_orders = 3000\n").unwrap();
        assert_eq!(
            c.core_config(2).max_open_orders,
            6000,
            "per symbol x symbols"
        );
        let mut symbols = engine::symbol::SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        symbols.intern("ETHUSDT").unwrap();
        let core = engine::core::Core::new(
            &symbols,
            c.core_config(symbols.len()),
            crate::clock::MonoClock,
        );
        assert_eq!(
            core.order_capacity(),
            6000,
            "allocated at start-up, past 1,024"
        );
        let c = Config::parse(&format!("{ORDERS}[risk]\nmax_open_orders = 5\n")).unwrap();
        assert_eq!(
            c.core_config(1).max_open_orders,
            5,
            "live orders: risk is on"
        );
        // Paper without risk: the core's default table.
        let c = Config::parse("[risk]\nmax_open_orders = 5\n").unwrap();
        assert_eq!(
            c.core_config(1).max_open_orders,
            engine::core::CoreConfig::default().max_open_orders
        );
    }

    #[test]
    fn snapshots_follow_the_depth_streams() {
        let streams = |s: &str| {
            Config::parse(&format!("[venue]\nstreams = {s}\n"))
                .unwrap()
                .venue
                .carries_depth()
        };
        assert!(streams("[\"trade\", \"depth@100ms\"]"));
        assert!(streams("[\"depth\"]"));
        assert!(!streams("[\"trade\"]"));
        assert!(!streams("[\"trade\", \"bookTicker\", \"depth5\"]"));
        let c = Config::parse("[venue]\nws_url = \"tcp://127.0.0.1:9\"\nstreams = [\"trade\"]\n")
            .unwrap();
        assert!(
            c.venue.carries_depth(),
            "a raw feed carries whatever the venue sends"
        );
    }

    #[test]
    fn paces() {
        assert_eq!("x10".parse::<Pace>(), Ok(Pace::Scaled(10.0)));
        assert_eq!("x0.5".parse::<Pace>(), Ok(Pace::Scaled(0.5)));
        assert_eq!("recorded".parse::<Pace>(), Ok(Pace::Scaled(1.0)));
        assert!("10".parse::<Pace>().is_err());
        assert!("x-1".parse::<Pace>().is_err());
    }
}
