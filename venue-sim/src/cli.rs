//! `tickline venue-sim`: the simulator as a command.

use super::{Faults, SimAuth, SimConfig, SimPace, SimSource, VenueSim};
use crate::gen::GenConfig;
use anyhow::{bail, Context, Result};
use engine::venue::Venue;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `tickline venue-sim`.
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// The venue's protocol to serve: binance (spot: market data, REST, orders), binance-usdm
    /// (futures market data and REST /fapi/v1/depth), okx, coinbase, bybit-spot or bybit-linear
    /// (market data; see venue_sim::venues). The default symbol follows the venue (BTC-USDT on
    /// okx, BTC-USD on coinbase, BTCUSDT elsewhere).
    #[arg(long, default_value = "binance", value_parser = parse_venue)]
    pub venue: Venue,
    /// Fault: hang up after every N data frames sent on a connection.
    #[arg(long, value_name = "N")]
    pub drop_every_frames: Option<u64>,
    /// okx, coinbase, bybit: close a connection that sent nothing this long (default: the
    /// venue's own limit, 30s on okx, none on the others).
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Capture to serve (line format `<recv_ns> <json>`, plain or gzip, or `.tlc`). Without it a
    /// synthetic feed is generated.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Comma-separated symbols: the generated ones (default BTCUSDT), or for a capture the
    /// symbol of its symbol-less REST snapshot first, plus any extra to list.
    #[arg(long, value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// Generated frames after the snapshots.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// asap, recorded, xN (recorded gaps N times faster), or rate:N (N frames per second).
    #[arg(long, default_value = "recorded", value_parser = parse_pace)]
    pub pace: SimPace,
    /// Market-data port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub ws_port: u16,
    /// REST port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub http_port: u16,
    /// Serve market data over TLS with a self-signed certificate for localhost and 127.0.0.1.
    #[arg(long)]
    pub tls: bool,
    /// Where to write the certificate's PEM (default: a temporary file, printed).
    #[arg(long)]
    pub cert_out: Option<PathBuf>,
    /// Newline-delimited combined frames over TCP instead of WebSocket.
    #[arg(long)]
    pub raw_tcp: bool,
    /// Start the feed once this many connections have subscribed (0: at once).
    #[arg(long, default_value_t = 1)]
    pub wait_for: usize,
    /// Server ping interval, e.g. 20s or 500ms (0 disables).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Frames queued per connection before a client that does not keep up is disconnected.
    #[arg(long, default_value_t = 16_384)]
    pub queue: usize,
    /// Keep serving this long after the feed ends (REST stays up), e.g. 5s.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub linger: Duration,
    /// Fault: drop every connection this long after it connected (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    pub drop_every: Option<Duration>,
    /// Fault: stop sending to a connection this long after it connected, keeping it open.
    #[arg(long, value_parser = parse_duration)]
    pub stall_after: Option<Duration>,
    /// Fault: after every N frames send an invalid (non-JSON) text frame.
    #[arg(long)]
    pub garbage_every: Option<u64>,
    /// Fault: after every N frames send an oversized frame.
    #[arg(long)]
    pub oversized_every: Option<u64>,
    /// Size of the oversized frames in bytes (default 16 MiB + 1).
    #[arg(long, default_value_t = 0)]
    pub oversized_bytes: usize,
    /// Fault: send every message as three fragments.
    #[arg(long)]
    pub fragment: bool,
    /// Fault: after every N frames send a text frame that is not valid UTF-8.
    #[arg(long)]
    pub invalid_utf8_every: Option<u64>,
    /// Fault: close connections during the TLS handshake (with --tls).
    #[arg(long)]
    pub refuse_tls: bool,
    /// Wait this long before handling each order-API request (order.place, order.cancel,
    /// openOrders.status), e.g. 500us, 2ms (0: at once).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub order_latency: Duration,
    /// Refuse order-API requests (and register no trade tap with the publisher).
    #[arg(long)]
    pub no_orders: bool,
    /// Write a ledger to FILE (created or truncated): one JSON line per order.place accepted
    /// or refused, {"type":"place","clientOrderId":..,"orderId":..,"accepted":..}, and one per
    /// fill reported, {"type":"fill","clientOrderId":..,"orderId":..,"tradeId":..,"price":..,
    /// "qty":..}, each written as it happens.
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Print the final counters as one JSON object on stdout instead of text on stderr.
    #[arg(long)]
    pub json: bool,
    /// Do not authenticate order-API requests (any well-formed apiKey/signature, execution
    /// reports without a user data stream subscription). By default the simulator checks them
    /// as Binance does, against its built-in test keys (see `venue_sim::SimAuth`).
    #[arg(long)]
    pub lenient_auth: bool,
}

impl SimArgs {
    /// The library configuration these options describe.
    pub fn to_config(&self) -> Result<SimConfig> {
        if self.refuse_tls && !self.tls {
            bail!("--refuse-tls needs --tls");
        }
        let source = match &self.capture {
            Some(p) => SimSource::Capture(p.clone()),
            None => SimSource::Generated(GenConfig {
                symbols: if self.symbols.is_empty() {
                    vec![crate::venues::default_symbol(self.venue).into()]
                } else {
                    self.symbols.clone()
                },
                events: self.events,
                seed: self.seed,
                start_ns: 1_000_000_000,
            }),
        };
        Ok(SimConfig {
            source,
            pace: self.pace,
            ws_port: self.ws_port,
            http_port: self.http_port,
            tls: self.tls,
            cert_out: self.cert_out.clone(),
            raw_tcp: self.raw_tcp,
            faults: Faults {
                drop_every: self.drop_every,
                stall_after: self.stall_after,
                garbage_every: self.garbage_every,
                oversized_every: self.oversized_every,
                oversized_bytes: self.oversized_bytes,
                fragment: self.fragment,
                invalid_utf8_every: self.invalid_utf8_every,
                refuse_tls: self.refuse_tls,
                drop_every_frames: self.drop_every_frames,
            },
            symbols: if self.capture.is_some() {
                self.symbols.clone()
            } else {
                Vec::new()
            },
            wait_for_subscribers: self.wait_for,
            ping_interval: self.ping_interval,
            queue_frames: self.queue,
            order_api: !self.no_orders,
            order_latency: self.order_latency,
            ledger: self.ledger.clone(),
            auth: if self.lenient_auth {
                SimAuth::Lenient
            } else {
                SimAuth::default()
            },
            ..SimConfig::default()
        })
    }
}

/// Runs the simulator until Ctrl-C or SIGTERM, or until the feed has ended and been sent to
/// every connection (plus `--linger`). Prints the listening addresses first (stdout, one
/// `name value` pair a line: `ws`, `http`, and `cert` in TLS mode), the counters last.
pub fn run_cli(args: SimArgs) -> Result<()> {
    if !matches!(args.venue, Venue::Binance | Venue::BinanceUsdm) {
        return run_other_venue(args);
    }
    if args.idle_timeout.is_some() {
        bail!("--idle-timeout is for okx, coinbase and bybit");
    }
    let cfg = args.to_config()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }
    let sim = match args.venue {
        Venue::BinanceUsdm => crate::venues::binance_usdm::start(cfg)?,
        _ => VenueSim::start(cfg)?,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ws {}", sim.ws_url())?;
        writeln!(out, "http {}", sim.http_url())?;
        if let Some(p) = sim.cert_path() {
            writeln!(out, "cert {}", p.display())?;
        }
        out.flush()?;
    }
    tracing::info!(
        target: "venue_sim",
        "serving; paths /stream?streams=<a>/<b>, /ws, /ws/<stream>; orders (order.place, \
         order.cancel, openOrders.status, order.status, myTrades) on any of them or /ws-api/v3; \
         REST {}, /api/v3/exchangeInfo; the feed starts after {} subscriber(s); \
         Ctrl-C stops",
        if args.venue == Venue::BinanceUsdm {
            "/fapi/v1/depth (USD-M futures frames), /api/v3/depth"
        } else {
            "/api/v3/depth"
        },
        args.wait_for
    );
    if let Some(p) = &args.ledger {
        tracing::info!(target: "venue_sim", "ledger {}", p.display());
    }
    let mut done_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if sim.wait_until_done(Duration::from_millis(100)) {
            let t = *done_at.get_or_insert_with(Instant::now);
            if t.elapsed() >= args.linger {
                break;
            }
        }
    }
    let stats = sim.stats();
    let probes = sim.probe_summary();
    sim.stop();
    if args.json {
        let mut v: serde_json::Value = serde_json::from_str(&stats.to_json())?;
        v["probe_latency_ns"] = serde_json::from_str(&probes.to_json())?;
        println!("{v}");
    } else {
        let f = &stats.faults;
        tracing::info!(
            target: "venue_sim",
            "{} frames published, {} sent ({} bytes) over {} connections; \
             {} subscriptions, {} requests ({} errors); {} REST requests ({} errors); \
             {} slow clients cut off; faults: {} drops, {} stalls, {} closes, {} resets, \
             {} torn, {} garbage, {} oversized, {} fragmented, {} invalid UTF-8, {} TLS refused",
            stats.frames_published,
            stats.frames_sent,
            stats.bytes_sent,
            stats.connections_accepted,
            stats.subscriptions,
            stats.control_requests,
            stats.control_errors,
            stats.rest_requests,
            stats.rest_errors,
            stats.slow_disconnects,
            f.drops,
            f.stalls,
            f.closes,
            f.resets,
            f.torn_frames,
            f.garbage_frames,
            f.oversized_frames,
            f.fragmented_messages,
            f.invalid_utf8_frames,
            f.tls_refused
        );
        let o = &stats.orders;
        tracing::info!(
            target: "venue_sim",
            "orders: {} requests ({} errors), {} placed, {} canceled, {} fills, \
             {} events dropped, {} probes",
            o.requests, o.errors, o.placed, o.canceled, o.fills, o.events_dropped, o.probes
        );
        tracing::info!(
            target: "venue_sim",
            "probe wire-to-wire (trade frame written -> probe order read, \
             CLOCK_MONOTONIC): {probes}"
        );
    }
    Ok(())
}

/// `--venue okx|coinbase|bybit-spot|bybit-linear`: the market-data simulator
/// ([`crate::venues::MdSim`]) until Ctrl-C, SIGTERM or the feed's end (plus `--linger`).
fn run_other_venue(args: SimArgs) -> Result<()> {
    let cfg = args.to_config()?;
    let opts = crate::venues::VenueOptions {
        venue: args.venue,
        idle_timeout: args.idle_timeout,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }
    let sim = crate::venues::MdSim::start(cfg, opts)?;
    {
        let mut out = std::io::stdout().lock();
        for path in sim.paths() {
            writeln!(out, "ws {}{path}", sim.ws_url())?;
        }
        if let Some(p) = sim.cert_path() {
            writeln!(out, "cert {}", p.display())?;
        }
        out.flush()?;
    }
    tracing::info!(
        target: "venue_sim",
        "serving {} market data for {}; the feed starts after {} subscriber(s); Ctrl-C stops",
        args.venue,
        sim.symbols().join(","),
        args.wait_for
    );
    let mut done_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if sim.wait_until_done(Duration::from_millis(100)) {
            let t = *done_at.get_or_insert_with(Instant::now);
            if t.elapsed() >= args.linger {
                break;
            }
        }
    }
    let stats = sim.stats();
    sim.stop();
    if args.json {
        println!("{}", stats.to_json());
    } else {
        let f = &stats.faults;
        tracing::info!(
            target: "venue_sim",
            "{} frames published, {} sent ({} bytes) over {} connections; {} subscriptions, \
             {} requests ({} errors), {} client heartbeats, {} idle closes; {} slow clients cut \
             off; faults: {} drops, {} stalls, {} garbage, {} oversized, {} fragmented, \
             {} invalid UTF-8, {} TLS refused",
            stats.frames_published,
            stats.frames_sent,
            stats.bytes_sent,
            stats.connections_accepted,
            stats.subscriptions,
            stats.control_requests,
            stats.control_errors,
            stats.client_pings,
            stats.pong_timeouts,
            stats.slow_disconnects,
            f.drops,
            f.stalls,
            f.garbage_frames,
            f.oversized_frames,
            f.fragmented_messages,
            f.invalid_utf8_frames,
            f.tls_refused
        );
    }
    Ok(())
}

/// A venue name (`binance`, `binance-usdm`, `okx`, `coinbase`, `bybit-spot`, `bybit-linear`).
fn parse_venue(s: &str) -> Result<Venue, String> {
    Venue::parse(s.trim()).ok_or_else(|| {
        format!(
            "unknown venue {s:?}: expected one of {}",
            engine::venue::names()
        )
    })
}

/// `asap`, `recorded`, `xN` or `rate:N`.
pub(crate) fn parse_pace(s: &str) -> Result<SimPace, String> {
    let s = s.trim();
    let bad = || format!("bad pace {s:?}: expected asap, recorded, xN (e.g. x10) or rate:N");
    match s {
        "asap" => Ok(SimPace::Asap),
        "recorded" => Ok(SimPace::Recorded(1.0)),
        _ => {
            if let Some(f) = s.strip_prefix('x') {
                match f.parse::<f64>() {
                    Ok(f) if f.is_finite() && f > 0.0 => Ok(SimPace::Recorded(f)),
                    _ => Err(bad()),
                }
            } else if let Some(r) = s.strip_prefix("rate:") {
                match r.parse::<u64>() {
                    Ok(r) if r > 0 => Ok(SimPace::Rate(r)),
                    _ => Err(bad()),
                }
            } else {
                Err(bad())
            }
        }
    }
}

/// `250ms`, `20s`, `2m`, `500us`, or a bare number of seconds (fractions allowed).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("bad duration {s:?}: expected e.g. 500ms, 20s, 2m, 250us or 1.5");
    let (num, scale) = if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale < 1e9 => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cmd {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn paces_and_durations() {
        assert_eq!(parse_pace("asap"), Ok(SimPace::Asap));
        assert_eq!(parse_pace("recorded"), Ok(SimPace::Recorded(1.0)));
        assert_eq!(parse_pace("x2.5"), Ok(SimPace::Recorded(2.5)));
        assert_eq!(parse_pace("rate:500"), Ok(SimPace::Rate(500)));
        for bad in ["x0", "x-1", "rate:0", "fast", "xabc"] {
            assert!(parse_pace(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn flags_make_a_config() {
        let c = Cmd::try_parse_from([
            "x",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--events",
            "10",
            "--pace",
            "rate:100",
            "--tls",
            "--drop-every",
            "5s",
            "--garbage-every",
            "7",
            "--fragment",
            "--ping-interval",
            "500ms",
        ])
        .unwrap();
        let cfg = c.sim.to_config().unwrap();
        assert_eq!(cfg.pace, SimPace::Rate(100));
        assert!(cfg.tls && cfg.faults.fragment);
        assert_eq!(cfg.faults.drop_every, Some(Duration::from_secs(5)));
        assert_eq!(cfg.faults.garbage_every, Some(7));
        assert_eq!(cfg.ping_interval, Duration::from_millis(500));
        match cfg.source {
            SimSource::Generated(g) => {
                assert_eq!(g.symbols, ["BTCUSDT", "ETHUSDT"]);
                assert_eq!(g.events, 10);
            }
            s => panic!("{s:?}"),
        }
        assert!(cfg.order_api);
        assert_eq!(cfg.order_latency, Duration::ZERO);
        assert_eq!(cfg.ledger, None);
        let c = Cmd::try_parse_from([
            "x",
            "--order-latency",
            "2ms",
            "--no-orders",
            "--ledger",
            "/tmp/l.jsonl",
        ])
        .unwrap();
        let cfg = c.sim.to_config().unwrap();
        assert_eq!(cfg.order_latency, Duration::from_millis(2));
        assert!(!cfg.order_api);
        assert_eq!(cfg.ledger, Some(PathBuf::from("/tmp/l.jsonl")));
        let c = Cmd::try_parse_from(["x", "--venue", "okx", "--drop-every-frames", "50"]).unwrap();
        assert_eq!(c.sim.venue, Venue::Okx);
        assert_eq!(
            c.sim.to_config().unwrap().faults.drop_every_frames,
            Some(50)
        );
        match c.sim.to_config().unwrap().source {
            SimSource::Generated(g) => assert_eq!(g.symbols, ["BTC-USDT"]),
            s => panic!("{s:?}"),
        }
        assert!(Cmd::try_parse_from(["x", "--venue", "kraken"]).is_err());
        let c = Cmd::try_parse_from(["x"]).unwrap();
        assert_eq!(c.sim.venue, Venue::Binance);
        let c = Cmd::try_parse_from(["x", "--refuse-tls"]).unwrap();
        assert!(c.sim.to_config().is_err());
        assert!(Cmd::try_parse_from(["x", "--pace", "warp"]).is_err());
    }
}
